// Search-as-you-type for the condition fields: fills each field's datalist from /api/conditions.
document.querySelectorAll("input.condition-search").forEach((input) => {
  const list = document.getElementById(input.getAttribute("list"));
  let pending = null;
  input.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(async () => {
      const text = input.value.trim();
      if (text.length < 2) return;
      const response = await fetch("/api/conditions?q=" + encodeURIComponent(text), {credentials: "same-origin"});
      if (!response.ok) return;
      list.replaceChildren(...(await response.json()).map((item) => {
        const option = document.createElement("option");
        option.value = item.name;
        if (item.matched) option.label = item.name + " (" + item.matched + ")";
        return option;
      }));
    }, 150);
  });
});

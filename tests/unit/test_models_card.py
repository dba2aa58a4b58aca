"""Model cards round-trip through README.md and refuse files that are not cards."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dermkit.core.errors import InputError
from dermkit.models import ModelCard
from dermkit.models.card import RESEARCH_ONLY


def test_card_round_trips_through_markdown() -> None:
    card = ModelCard(model_id="m", classes=["BCC", "melanoma"], results={"auc": 0.9},
                     training_data=[{"name": "PAD-UFES-20", "license": "CC BY 4.0"}], created="2025-01-02")
    text = card.to_markdown()
    assert ModelCard.from_markdown(text) == card
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["classes"][0] == {"name": "BCC", "ontology_id": "basal_cell_carcinoma"}
    assert front["out_of_scope_use"] == RESEARCH_ONLY
    assert "- BCC (basal_cell_carcinoma)" in text and "PAD-UFES-20 (licence: CC BY 4.0)" in text


def test_readme_without_front_matter_is_rejected(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# just a readme\n")
    with pytest.raises(InputError, match="no YAML front matter") as info:
        ModelCard.read(readme)
    assert info.value.file == readme


def test_front_matter_without_model_id_is_rejected() -> None:
    with pytest.raises(InputError, match="model_id"):
        ModelCard.from_markdown("---\nlicense: mit\n---\n# card\n")


def test_trained_weights_take_the_licence_of_their_data() -> None:
    from dermkit.models.card import license_of_trained_weights, training_data_entries

    ham = training_data_entries([{"source": "ham10000", "licence": "CC BY-NC 4.0", "table": "/t/ham"}])
    pad = training_data_entries([{"licence": "CC BY 4.0", "table": "/t/pad"}])
    assert ham == [{"name": "ham10000", "license": "CC BY-NC 4.0"}] and pad[0]["name"] == "pad"
    assert license_of_trained_weights(ham) == "cc-by-nc-4.0"
    assert license_of_trained_weights(ham + ham) == "cc-by-nc-4.0"
    assert license_of_trained_weights(ham + pad) == "other"  # mixed terms: the list names each
    assert license_of_trained_weights(training_data_entries([{"table": "/t/x"}])) == "other"

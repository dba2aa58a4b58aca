"""File names of the open_clip directory layout, shared by export and every loader."""

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
CARD_FILE = "README.md"
# Weight files open_clip itself looks for, in its order of preference (Hub repos use the older names).
WEIGHT_FILES = (WEIGHTS_FILE, "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin")
# Our section of open_clip_config.json (open_clip ignores it): version and the export's file list.
DERMKIT_KEY = "dermkit"

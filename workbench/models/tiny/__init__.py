"""Files of the built-in tiny model (``model: default``); data only, see docs/tiny_model.md."""

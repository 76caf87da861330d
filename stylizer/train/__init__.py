"""Training: the AdaIN decoder (``decoder``), presets for CIN and Johnson (``preset``), shared data (``data``)."""

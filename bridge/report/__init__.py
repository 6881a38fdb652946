"""Reports: one data model (model.py), renderers per format (terminal, json)."""

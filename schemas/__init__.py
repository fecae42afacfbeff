"""JSON Schemas and policy profiles shipped with preflight (installed as preflight.schemas)."""

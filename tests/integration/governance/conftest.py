# The PostgreSQL scratch-database fixture lives with the registry's test helpers for now (see the report).
from modelyard.registry.testing import postgres_admin_url  # noqa: F401  (fixture)
from modelyard.testing.models import onnx_models  # noqa: F401  (fixture)

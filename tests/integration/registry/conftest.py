from modelyard.registry.testing import model_name, postgres_admin_url, registry  # noqa: F401  (fixtures)
from modelyard.testing.models import onnx_models  # noqa: F401  (fixture)

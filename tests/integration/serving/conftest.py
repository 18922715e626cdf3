from modelyard.serving.testing import breast_cancer, harness, repository, service  # noqa: F401  (fixtures)
from modelyard.testing.models import onnx_models  # noqa: F401  (fixture)

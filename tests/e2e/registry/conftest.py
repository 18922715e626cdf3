from modelyard.testing.models import onnx_models  # noqa: F401  (fixture)

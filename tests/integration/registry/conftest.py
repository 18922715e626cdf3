from modelyard.registry.testing import model_name, registry  # noqa: F401  (fixtures)

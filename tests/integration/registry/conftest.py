from modelyard.registry.testing import model_name, registry, s3_endpoint  # noqa: F401  (fixtures)

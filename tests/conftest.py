pytest_plugins = ["modelyard.testing.plugin", "modelyard.testing.models", "modelyard.testing.tls"]

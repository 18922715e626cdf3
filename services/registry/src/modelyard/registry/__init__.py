"""The Modelyard registry service: registered models, versions, aliases, artifacts and their lifecycle."""

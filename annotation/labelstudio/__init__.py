"""Label Studio: a local server the project starts (``server``) and the ``labelstudio`` review backend."""

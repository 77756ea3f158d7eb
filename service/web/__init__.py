"""The HTTP app: routes stay thin and call the layers below."""

"""Name/config/instance lookup shared by the initializer and regularizer catalogues (Keras `get`)."""
from __future__ import annotations


class Catalog:
    """Resolves identifiers for one kind of object: a name, a config dict, an instance or a callable."""

    def __init__(self, kind: str, base: type, classes: dict, aliases: dict, accept_classes: bool = False):
        self.kind, self.base, self.classes, self.aliases = kind, base, classes, aliases
        self.accept_classes = accept_classes

    def get(self, identifier):
        if identifier is None:
            return None
        if isinstance(identifier, self.base) or callable(identifier) and not isinstance(identifier, type):
            return identifier
        if self.accept_classes and isinstance(identifier, type) and issubclass(identifier, self.base):
            return identifier()
        if isinstance(identifier, dict):
            return self.deserialize(identifier)
        if isinstance(identifier, str):
            cls = self.aliases.get(identifier) or self.classes.get(identifier)
            if cls is None:
                raise ValueError(f"unknown {self.kind} {identifier!r}; known: {sorted(self.aliases)}")
            return cls()
        raise ValueError(f"could not interpret {self.kind} {identifier!r}")

    def serialize(self, obj) -> dict:
        if not isinstance(obj, self.base):
            raise ValueError(f"{self.kind} {obj!r} cannot be serialized: use a kc.{self.kind}s class")
        return {"class_name": type(obj).__name__, "config": obj.get_config()}

    def deserialize(self, config: dict):
        cls = self.classes.get(config.get("class_name"))
        if cls is None:
            raise ValueError(f"unknown {self.kind} class {config.get('class_name')!r}")
        return cls.from_config(config.get("config", {}))

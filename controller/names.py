"""Entity names and paths, as OpenWhisk defines them (shared/spec/openwhisk.md §4)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from controller import messages
from controller.errors import InvalidInput

MAX_NAME_LENGTH = 256
_NAME = re.compile(r"\A([\w]|[\w][\w@ .&-]{0,254}[\w@.&-])\Z", re.ASCII)
DEFAULT_PACKAGE = "default"
SYSTEM_NAMESPACE = "whisk.system"


def is_valid_name(segment: str) -> bool:
    return bool(_NAME.match(segment))


def check_segment(segment: str, *, namespace: bool = False) -> str:
    """Return `segment` if it is a valid entity name, else raise InvalidInput."""
    if len(segment) > MAX_NAME_LENGTH:
        raise InvalidInput(messages.name_too_long(len(segment), MAX_NAME_LENGTH))
    if not is_valid_name(segment):
        raise InvalidInput(messages.ILLEGAL_NAMESPACE if namespace else messages.ILLEGAL_NAME)
    return segment


@dataclass(frozen=True)
class ActionName:
    """An action's name inside its namespace: an optional package and the simple name."""

    package: str
    name: str

    @classmethod
    def parse(cls, text: str) -> ActionName:
        """Parse `name` or `package/name`, validating each segment."""
        parts = text.split("/")
        if len(parts) == 1:
            return cls("", check_segment(parts[0]))
        if len(parts) == 2:
            package, name = (check_segment(p) for p in parts)
            if package == DEFAULT_PACKAGE:
                raise InvalidInput(messages.RESERVED_PACKAGE)
            return cls(package, name)
        raise InvalidInput(messages.ILLEGAL_NAME)

    def __str__(self) -> str:
        return f"{self.package}/{self.name}" if self.package else self.name


@dataclass(frozen=True)
class EntityPath:
    """A fully qualified action reference: namespace, optional package, name."""

    namespace: str
    package: str
    name: str

    @classmethod
    def parse(cls, text: str, default_namespace: str) -> EntityPath:
        """Resolve a reference as OpenWhisk does: `name`, `pkg/name`, `/ns/name`,
        `/ns/pkg/name` or `ns/pkg/name`; `_` stands for `default_namespace`."""
        absolute = text.startswith("/")
        parts = text.strip("/").split("/") if text.strip("/") else []
        if not parts or any(not p for p in parts) or len(parts) > 3:
            raise InvalidInput(messages.component_invalid(text))
        if len(parts) == 1:
            if absolute:
                raise InvalidInput(messages.component_invalid(text))
            namespace, package, name = default_namespace, "", parts[0]
        elif len(parts) == 2:
            if absolute:
                namespace, package, name = parts[0], "", parts[1]
            else:
                namespace, package, name = default_namespace, parts[0], parts[1]
        else:
            namespace, package, name = parts
        if namespace == "_":
            namespace = default_namespace
        for segment in (namespace, package, name):
            if segment and not is_valid_name(segment):
                raise InvalidInput(messages.component_invalid(text))
        return cls(namespace, package, name)

    @property
    def action_name(self) -> ActionName:
        return ActionName(self.package, self.name)

    def __str__(self) -> str:
        middle = f"/{self.package}" if self.package else ""
        return f"/{self.namespace}{middle}/{self.name}"

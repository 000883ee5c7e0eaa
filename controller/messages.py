"""Every user-facing error string, worded as OpenWhisk words it where clients know it."""

from __future__ import annotations

import json
from typing import Any

# Authentication and authorisation.
AUTH_REQUIRED = "The resource requires authentication, which was not supplied with the request"
AUTH_INVALID = "The supplied authentication is invalid"
BEARER_REQUIRED = "An 'Authorization: Bearer <token>' header is required"
API_KEY_REQUIRED = "An 'X-Api-Key' header is required"
API_KEY_INVALID = "The supplied API key is invalid"
ADMIN_REQUIRED = "This operation requires an administrator token"
EXPLICIT_NAMESPACE = "With a bearer token, name the namespace in the path instead of '_'."

# Generic resource errors.
RESOURCE_NOT_FOUND = "The requested resource could not be found."
ENTITY_NOT_FOUND = "The requested resource does not exist."
METHOD_NOT_ALLOWED = "The requested method is not allowed for this resource."
RESOURCE_EXISTS = "resource already exists"
CONCURRENT_MODIFICATION = "Concurrent modification to resource detected."
INTERNAL_ERROR = "Internal server error."
DATABASE_UNREACHABLE = "The database is unreachable; try again later."
MISCONFIGURED = (
    "This controller's keys do not open the database's secrets; its operator must set them."
)
REDIS_UNREACHABLE = (
    "The execution engine is unreachable (its Redis does not answer); try again later."
)
JSON_CONTENT_TYPE = "The request's Content-Type is not supported: send application/json."


def not_authorized(path: str) -> str:
    return f"The supplied authentication is not authorized to access '{path}'."


def malformed(detail: str) -> str:
    return f"The request content was malformed:\n{detail}"


def request_too_large(size: int, limit: int) -> str:
    return f"Request larger than allowed: {size} > {limit} bytes."


def field_too_large(field: str, size: int, limit: int) -> str:
    return f"{field} larger than allowed: {size} > {limit} bytes."


def namespace_not_found(org_id: str, int_id: str) -> str:
    return f"No namespace exists for organization '{org_id}' and integration '{int_id}'."


def action_not_found(namespace: str, name: str) -> str:
    return f"The action '{name}' does not exist in namespace '{namespace}'."


def action_exists(namespace: str, name: str) -> str:
    return f"The action '{name}' already exists in namespace '{namespace}'."


def registration_not_found(client_id: str, registration_id: str) -> str:
    return (
        f"No event registration '{registration_id}' exists for client '{client_id}' "
        "in this namespace."
    )


def registration_exists(client_id: str, registration_id: str) -> str:
    return f"The event registration '{registration_id}' of client '{client_id}' already exists."


# Names (shared/spec/openwhisk.md §1, §4; the 'segement' typo is OpenWhisk's own).
ILLEGAL_NAME = "The name of the entity contains illegal characters."
ILLEGAL_NAMESPACE = "The namespace contains illegal characters."
RESERVED_PACKAGE = "Package name 'default' is reserved."


def name_too_long(length: int, limit: int) -> str:
    return f"Name segement longer than allowed: {length} > {limit}."


# Actions (shared/spec/openwhisk.md §2.3).
EXEC_UNDEFINED = "exec undefined"
KIND_REQUIRED = "'kind' must be a string defined in 'exec'"
NO_COMPONENTS = "No component specified for the sequence."
SEQUENCE_SELF = "Sequence may not refer to itself."
SEQUENCE_COMPONENT_MISSING = "Sequence component does not exist."
SEQUENCE_TOO_LONG = "Too many actions in the sequence."
SEQUENCE_HAS_CODE = "a sequence takes 'exec.components', not code"

# Compositions of conductor actions (shared/spec/openwhisk.md §7), as OpenWhisk words them.
COMPOSITION_TOO_LONG = "Too many actions in the composition."


def composition_component_invalid(value: Any) -> str:
    shown = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return f"Failed to parse action name from json value {shown} during composition."


def composition_component_not_found(name: str) -> str:
    return f"Failed to resolve action with name '{name}' during composition."


def composition_component_not_accessible(name: str) -> str:
    return f"Failed entitlement check for action with name '{name}' during composition."


def composition_step_timeout(activation_id: str) -> str:
    return f"Timeout reached when retrieving activation {activation_id} during composition."


def code_required(kind: str) -> str:
    return f"'code' must be a string or attachment object defined in 'exec' for '{kind}' actions"


def blackbox_image_refused(image: str, variable: str) -> str:
    return (
        f"The image '{image}' is not one blackbox actions may use here: the operator allows "
        f"images in {variable}."
    )


def main_not_string(kind: str) -> str:
    return f"if defined, 'main' be a string in 'exec' for '{kind}' actions"


def unsupported_kind(kind: str, valid: list[str]) -> str:
    quoted = ", ".join(f"'{k}'" for k in valid)
    return (
        f"The specified runtime '{kind}' is not supported by this platform. "
        f"Valid values are: {quoted}."
    )


def deprecated_kind(kind: str) -> str:
    return (
        f"The '{kind}' runtime is no longer supported. You may read and delete but not "
        "update or invoke this action."
    )


def duration_below(value: int, low: int) -> str:
    return f"duration {value} milliseconds below allowed threshold of {low} milliseconds"


def duration_above(value: int, high: int) -> str:
    return f"duration {value} milliseconds exceeds allowed threshold of {high} milliseconds"


def memory_below(value: int, low: int) -> str:
    return f"memory size {value} MB below allowed threshold of {low} MB"


def memory_above(value: int, high: int) -> str:
    return f"memory size {value} MB exceeds allowed threshold of {high} MB"


def concurrency_below(value: int, low: int) -> str:
    return f"concurrency {value} below allowed threshold of {low}"


def concurrency_above(value: int, high: int) -> str:
    return f"concurrency {value} exceeds allowed threshold of {high}"


def logs_below(value: int, low: int) -> str:
    return f"log size {value} MB below allowed threshold of {low} MB"


def logs_above(value: int, high: int) -> str:
    return f"log size {value} MB exceeds allowed threshold of {high} MB"


def limit_not_whole(what: str) -> str:
    return f"{what} limit must be whole number"


def component_invalid(component: str) -> str:
    return (
        f"The sequence component '{component}' is not a valid action path: use "
        "'/namespace/[package/]action' or 'package/action'."
    )


# Event registrations.
EVENTS_OF_INTEREST_EMPTY = "at least one event of interest is required"
NAME_MISMATCH = "does not match the name in the request path"


def runtime_action_missing(name: str, namespace: str) -> str:
    return f"the action '{name}' does not exist in namespace '{namespace}'"


def bad_status(status: str) -> str:
    return f"'{status}' is not a recognized registration status, must be 'enabled' or 'disabled'"


# Packages and bindings (shared/spec/openwhisk.md §2.3, §3.6).
NOT_IN_COLLECTION = "Resource by this name exists but is not in this collection."
BINDING_TARGET_MISSING = "Binding references a package that does not exist."
BINDING_TO_BINDING = "Cannot bind to another package binding."
BINDING_TO_NON_PACKAGE = "Cannot bind to a resource that is not a package."
PACKAGE_TO_BINDING = "Resource is a package and cannot be converted into a binding."


def package_not_empty(count: int) -> str:
    return (
        f"Package not empty (contains {count} entities). "
        "Set force param or delete package contents."
    )


# Triggers and rules (shared/spec/openwhisk.md §3.3, §3.4, §10.1).
FEED_NAME_INVALID = "Feed name is not valid"
RULE_NEEDS_TRIGGER_AND_ACTION = "rule requires a valid trigger and a valid action"
RULE_TRIGGER_GONE = "Only rules with existing triggers can be activated"
RULE_STATUS_MISSING = "Object is missing required member 'status'"
FIRE_FAILED = "There was an internal server error."


def trigger_missing(path: str) -> str:
    return f"trigger {path} does not exist"


def rule_action_missing(path: str) -> str:
    return f"action {path} does not exist"


def rule_state_invalid(state: str) -> str:
    return f"'{state}' is not a recognized rule state, must be one of ['active', 'inactive']"


def rule_reference_invalid(field: str, reference: str) -> str:
    return (
        f"'{field}' must be a fully qualified entity name such as '/_/{field}' or an object "
        f"with 'path' and 'name': {reference}"
    )


# Web actions (shared/spec/openwhisk.md §8; OpenWhisk's `Messages` and Akka's 401 text).
WEB_AUTH_FAILED = "Authentication is possible but has failed or not yet been provided."
WEB_ERROR_PROCESSING = "There was an error processing your request."
WEB_RESPONSE_NOT_READY = "Response not yet ready."
WEB_PROPERTY_NOT_FOUND = "Response does not include requested property."
WEB_CONTENT_TYPE_MISMATCH = "Response type in header did not match generated content type."
WEB_UNKNOWN_CONTENT_TYPE = "Response did not specify a known content-type."


def web_invalid_media(media_type: str) -> str:
    return f"Response is not valid '{media_type}'."


# `require-adobe-auth` validators (/adobeio/shared-validators-v1/*): Adobe's wording where it is
# known (shared/spec/adobe-runtime.md §4.3; the 403 as App Builder apps document it).
ADOBE_AUTH_FAILED = (
    "request is invalid, reason: failed authorization. Please verify your token and "
    "organization id."
)
ADOBE_AUTH_INVALID_TOKEN = "cannot authorize request, reason: invalid token"
ADOBE_AUTH_UNAVAILABLE = "cannot authorize request, reason: the token issuer cannot be reached"


def adobe_auth_missing(header: str) -> str:
    return f"cannot authorize request, reason: missing {header} header"

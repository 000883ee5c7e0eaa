"""The OpenWhisk REST API (`/api/v1`), as `wsk`, `aio` and the `openwhisk` npm client speak
it (shared/spec/openwhisk.md). Basic authentication with a namespace's `uuid:key`."""

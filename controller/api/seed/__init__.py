"""The seed API (`/runtime/...`): Adobe I/O Runtime's management endpoints and DTOs."""

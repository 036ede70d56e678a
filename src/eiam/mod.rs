//! The EIAM OpenAPI client: a pure request signer, a typed client, credential providers and errors.

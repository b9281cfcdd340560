"""schemathesis hooks for scripts/contract-test.sh (loaded through SCHEMATHESIS_HOOKS)."""

import schemathesis

# tus PATCH bodies (and creation-with-upload) are raw bytes, like application/octet-stream.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

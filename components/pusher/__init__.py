"""The Pusher: versioned pushes that never lose or half-write a version,
with warm-up requests, a model card and lineage."""

//! MLflow's validation limits and name rules (api.md §4), shared by every store.

//! Layered configuration (placeholder: being written).

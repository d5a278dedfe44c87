//! TODO(helper) placeholder

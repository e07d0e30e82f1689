"""Generated from proto/billing/v1; do not edit."""

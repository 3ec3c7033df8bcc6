"""The OpenAI-compatible server for a chosen configuration: a later issue."""

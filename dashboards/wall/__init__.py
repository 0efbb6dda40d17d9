"""The browser war room: a second renderer of dashboards/generated/*.json, served by the worker."""

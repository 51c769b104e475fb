"""Mappings shipped with the importer, as package data (`helpdesk.yaml`)."""

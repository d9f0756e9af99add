"""Machinery shared by the stage services: conversions, error mapping, jobs, server bootstrap."""

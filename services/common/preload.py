"""Imported once by the job fork server so that every job child starts with torch and spiker loaded."""

import torch  # noqa: F401

import services.common.child  # noqa: F401
import spiker  # noqa: F401
import spiker.flow.stages  # noqa: F401
import spiker.hdl  # noqa: F401

"""Imported once by the job fork server so that every job child starts with its heavy imports done.

torch and spiker for every job; scikit-learn (the digits dataset) and matplotlib (training
curves, Pareto plots) because a cold import of each costs seconds in every child otherwise.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot  # noqa: E402, F401
import sklearn.datasets  # noqa: E402, F401
import torch  # noqa: E402, F401

import spiker  # noqa: E402, F401
import spiker.flow.stages  # noqa: E402, F401
import spiker.hdl  # noqa: E402, F401
import spiker_services.common.child  # noqa: E402, F401

"""Probes: pure measurements of parameters on data through one `Objective` (see DESIGN.md, "The spine").

Curvature: `top_eigenvalues` (block Lanczos), `spectral_density` (SLQ), `full_spectrum` (exact, small models),
`trace` (Hutchinson / Hutch++), `eps_sharpness` (Keskar et al.). Each returns a dataclass with the numbers, the
cost and the mode, and a `to_dict()`.

Probes never train and never touch the store; they must not import genlab.train, genlab.store, genlab.studies
or genlab.cli.
"""

from genlab.probes.curvature import FullSpectrum, TraceEstimate, full_spectrum, hessian_matrix, trace
from genlab.probes.lanczos import Eigenpairs, SpectralDensity, outlier_count, spectral_density, top_eigenvalues
from genlab.probes.objective import Cost, Objective, ParamInfo, ParamSpace
from genlab.probes.sharpness import Sharpness, eps_sharpness

__all__ = [
    "Cost",
    "Eigenpairs",
    "FullSpectrum",
    "Objective",
    "ParamInfo",
    "ParamSpace",
    "Sharpness",
    "SpectralDensity",
    "TraceEstimate",
    "eps_sharpness",
    "full_spectrum",
    "hessian_matrix",
    "outlier_count",
    "spectral_density",
    "top_eigenvalues",
    "trace",
]

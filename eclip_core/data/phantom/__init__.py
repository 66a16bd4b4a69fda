"""The embedded default data: real Open-I reports, phantom radiographs, simulated EGD-CXR gaze.

Every study it produces carries ``meta["simulated"] = True``: the text, MeSH codes and split are real,
the pixels and the gaze are simulated. Build it with ``python -m eclip_core.data.phantom``.
"""

from eclip_core.data.phantom.build import PHANTOM_VERSION, PhantomConfig, build_phantom_dataset, default_out_dir
from eclip_core.data.phantom.findings import KINDS, Finding, findings_from_mesh, findings_from_text, study_findings
from eclip_core.data.phantom.gaze_sim import simulate_fixations, write_fixations
from eclip_core.data.phantom.render import RenderResult, render_study
from eclip_core.data.phantom.split import assign_split, load_r2gen_split

__all__ = [
    "PHANTOM_VERSION",
    "PhantomConfig",
    "build_phantom_dataset",
    "default_out_dir",
    "KINDS",
    "Finding",
    "findings_from_mesh",
    "findings_from_text",
    "study_findings",
    "simulate_fixations",
    "write_fixations",
    "RenderResult",
    "render_study",
    "assign_split",
    "load_r2gen_split",
]

import subprocess
import sys


def test_the_sim_bridge_runs_without_the_model_package():
    """Its ROS plumbing comes from sefm_interfaces: a sim host needs neither torch nor the EFM."""
    code = (
        "import sys; sys.modules['sefm_policy'] = None; sys.modules['torch'] = None;"
        "import sefm_sim_bridge.sim_node, sefm_sim_bridge.envs, sefm_sim_bridge.figures"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)

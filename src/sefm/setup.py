from glob import glob

from setuptools import find_packages, setup

package_name = "sefm"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        # config/ and launch/ are links to the repository's top-level folders.
        ("share/" + package_name + "/config", glob("config/*")),
        ("share/" + package_name + "/launch", glob("launch/*")),
    ],
    install_requires=["sefm_interfaces", "sefm_policy", "sefm_reward", "sefm_trainer", "sefm_sim_bridge"],
    python_requires=">=3.10",
    zip_safe=True,
    entry_points={"console_scripts": ["sefm = sefm.cli:main", "episode_manager_node = sefm.episode_manager_node:main"]},
    maintainer="sefm developers",
    description="Bringup for sefm: launch files, configs and the `sefm` command line.",
    license="Apache-2.0",
)

from setuptools import find_packages, setup

package_name = "sefm_sim_bridge"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["sefm_interfaces", "mujoco", "gymnasium", "numpy", "opencv-python-headless"],
    python_requires=">=3.10",
    zip_safe=True,
    entry_points={"console_scripts": ["sim_node = sefm_sim_bridge.sim_node:main"]},
    maintainer="sefm developers",
    description="MuJoCo LanguageTable, BananaTable and ALOHA sims, demonstrators; the sim bridge node.",
    license="Apache-2.0",
)

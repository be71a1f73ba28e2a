from setuptools import find_packages, setup

package_name = "sefm_trainer"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["sefm_policy", "sefm_reward", "sefm_sim_bridge", "rosbags", "scipy", "tqdm", "tensorboard"],
    python_requires=">=3.10",
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "recorder_node = sefm_trainer.recorder_node:main",
            "trainer_node = sefm_trainer.trainer_node:main",
        ]
    },
    maintainer="sefm developers",
    description="Episode bags, Stage 1 SFT and Stage 2 REINFORCE; recorder and trainer nodes.",
    license="Apache-2.0",
)

from setuptools import find_packages, setup

package_name = "sefm_reward"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["sefm_policy", "numpy", "scipy"],
    python_requires=">=3.10",
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "reward_node = sefm_reward.reward_node:main",
            "reward_server = sefm_reward.reward_server:main",
        ]
    },
    maintainer="sefm developers",
    description="Steps-to-go distance, reward and success detection read off a frozen EFM; the reward node.",
    license="Apache-2.0",
)

from setuptools import find_packages, setup

package_name = "sefm_policy"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=[
        "sefm_interfaces",
        "torch",
        "transformers",
        "tokenizers",
        "safetensors",
        "numpy",
        "pydantic",
        "pyyaml",
        "opencv-python-headless",
    ],
    python_requires=">=3.10",
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "policy_node = sefm_policy.policy_node:main",
            "policy_server = sefm_policy.policy_server:main",
        ]
    },
    maintainer="sefm developers",
    description="The embodied foundation model library and the policy node.",
    license="Apache-2.0",
)

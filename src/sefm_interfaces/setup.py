from setuptools import find_packages, setup

package_name = "sefm_interfaces"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["numpy", "pydantic", "pyyaml", "opencv-python-headless"],
    python_requires=">=3.10",
    zip_safe=True,
    maintainer="sefm developers",
    description="Topic names, QoS, node plumbing, frame assembly, typed configs and the episode protocol.",
    license="Apache-2.0",
)

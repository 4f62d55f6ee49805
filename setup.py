from glob import glob

from setuptools import find_packages, setup

package_name = "clip_perception"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="clip_perception maintainers",
    maintainer_email="maintainers@clip-perception.invalid",
    description="Open-vocabulary CLIP perception for ROS 2",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "clip_perception_node = clip_perception.cli.node:main",
            "demo = clip_perception.cli.demo:main",
            "build_engine = clip_perception.cli.build_engine:main",
            "train_adapter = clip_perception.cli.train_adapter:main",
            "evaluate_prompts = clip_perception.cli.evaluate_prompts:main",
            "build_memory = clip_perception.cli.build_memory:main",
            "query_memory = clip_perception.cli.query_memory:main",
        ],
    },
)

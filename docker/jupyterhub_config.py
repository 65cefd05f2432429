"""JupyterHub for a workshop: one container per user from the learner image (dockerspawner), each
user's workspace kept in a volume of its own, so it survives the container (remove=True) and the
hub's restarts. See docker/README.md; tests/test_image.py loads this file and runs the image the way
these options make the spawner run it.

    VFIOLAB_IMAGE=vfiolab:arm64 jupyterhub -f docker/jupyterhub_config.py
"""
import os

c = get_config()  # noqa: F821  (jupyterhub defines get_config() when it loads this file)

# What the image holds (docker/Dockerfile): the user it runs as and its VFIOLAB_WORK.
IMAGE = os.environ.get("VFIOLAB_IMAGE", "vfiolab:amd64")
WORK = "/home/learner/vfiolab-work"

c.JupyterHub.spawner_class = "dockerspawner.DockerSpawner"
c.DockerSpawner.image = IMAGE
# `vfiolab lab` prepares the workspace (the released labs, copied in once and kept) and starts
# JupyterLab on it; the spawner appends --ip and --port, which go to JupyterLab. No notebook_dir:
# its --notebook-dir would name JupyterLab's root a second time, which JupyterLab refuses.
c.DockerSpawner.cmd = ["vfiolab", "lab", "--no-browser"]
c.DockerSpawner.volumes = {"vfiolab-{username}": WORK}
c.DockerSpawner.remove = True

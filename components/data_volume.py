"""DataVolume: a data service's DigitalOcean Block Storage volume (issue 23), created by the
provision phase in the cluster's region, attached by nobody here.

Its attachment has one owner, like the reserved IP's: the node that turns MASTER takes it
(templates/node/volume.py, through the volume actions API); a Pulumi attachment would move it
back after a failover. Nothing about it may ever replace it: the name is the cluster's and the
service's (stable), the region change is refused before any run (Engine.check_region), the
filesystem is made once (a change is refused by dynia.volumes.check_recorded, and ignored here
in case a by-hand run gets past that), and a smaller size is refused there too (DigitalOcean
resizes volumes only upward). Protected and retained on delete: `cluster destroy` leaves it in
the account unless `--delete-data` (dynia.volumes.delete_data) says otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi

# Inputs whose change makes DigitalOcean replace the volume (a new, empty one): never acted on.
IGNORED = ["name", "region", "initialFilesystemType", "filesystemType", "snapshotId"]


@dataclass
class DataVolumeArgs:
    cluster: str
    service: str
    name: str          # dynia.volumes.volume_name: what the node's mover asks the API for
    region: str
    size_gb: int
    filesystem: str


class DataVolume(pulumi.ComponentResource):
    id: pulumi.Output[str]
    record: pulumi.Output[dict]   # the provision phase's `volumes` entry (dynia.volumes.check_recorded)

    def __init__(self, name: str, args: DataVolumeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:DataVolume", name, None, opts)
        import pulumi_digitalocean as do

        volume = do.Volume(
            f"{name}-volume", name=args.name, region=args.region, size=args.size_gb,
            initial_filesystem_type=args.filesystem,
            description=f"dynia: data of service {args.service} in cluster {args.cluster}",
            tags=["dynia", f"dynia-{args.cluster}"],
            opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True,
                                        ignore_changes=list(IGNORED)))
        self.id = volume.id
        # What the state recorded, not what the spec asks: the next plan compares the spec with it.
        self.record = pulumi.Output.all(volume.id, volume.name, volume.size, volume.initial_filesystem_type).apply(
            lambda v: {"id": v[0], "name": v[1], "size_gb": v[2], "filesystem": v[3]})
        self.register_outputs({"id": self.id, "record": self.record})

"""LabVolume: a data service's volume in the lab (issue 23.4): the lab's block-storage "API"
(dynia.providers.lab_volumes) creates and formats it once, as DigitalOcean does a Block Storage
volume; attached by nobody here (the node that turns MASTER takes it). Retained on delete: the
lab's volume outlives `cluster destroy` unless `--delete-data` (Local.after_destroy)."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass
class LabVolumeArgs:
    lab_dir: str
    python: str
    name: str
    size_gb: int
    filesystem: str


class LabVolume(pulumi.ComponentResource):
    record: pulumi.Output[dict]   # the provision phase's `volumes` entry, as for DataVolume

    def __init__(self, name: str, args: LabVolumeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("dynia:index:LabVolume", name, None, opts)
        import json
        import shlex

        import pulumi_command as command

        create = (f"{shlex.quote(args.python)} -m dynia.providers.lab_volumes {shlex.quote(args.lab_dir)} create "
                  f"{args.name} --size-gb {args.size_gb} --filesystem {args.filesystem}")
        # create prints the volume's record as the lab keeps it: a volume made earlier keeps its
        # size and filesystem, and the record says so.
        made = command.local.Command(f"{name}-create", create=create,
                                     opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True))
        self.record = made.stdout.apply(lambda out: (lambda r: {"id": r["name"], "name": r["name"],
                                                                "size_gb": r["size_gb"],
                                                                "filesystem": r["filesystem"]})(json.loads(out)))
        self.register_outputs({"record": self.record})

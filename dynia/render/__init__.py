"""Pure rendering: spec + inventory + applied record → every node's files (rendering), what
one push carries (bundle), the edge policy, the host firewall, the resource guard."""

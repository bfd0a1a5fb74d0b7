"""What every package family shares: the neutral package model (`model`) and the family interface
(`interface`). Generic layers (build, records, publish) hold these values, never a family's own."""

"""Switchboard's API types: the Region and Room resources, the operator⇄SFU contract, and the
names, ports and defaults both sides share. Imports nothing else of Switchboard's."""

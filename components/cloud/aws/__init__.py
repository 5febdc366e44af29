"""AWS: network, signaling VM, bridge pool (Auto Scaling), IAM, and the stack's composition."""

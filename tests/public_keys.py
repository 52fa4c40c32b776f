"""Real public SSH keys the tests of both tiers use (no private halves exist anywhere in the project)."""

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKIIQRb+RTtN147yImzguA+ZJcsFCuYSvtE80Xb3bBLl alice@example.org"
RSA = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDht5rSVgmAmCYI+GJpn9KMPr7JrvY/3lIJz4zEJ8IKNU9PQ0K58ClxUtgO5lYF"
       "9uWtIz48I7K04uBPauLd0/i6e3X8h5L4QgGgRXWraFGgeqgq1UzRIxeCKSWXt9q+E7wncdMOa/NkVXfAImJNvgg9rRqvx09s96uX"
       "sz0CJkXjYDgbz770p0PeDgS8BdmvitC8lfATQLn5kURKgAIOgJy0dxmIDEi4EMCsK0LbFlu0J7+T9POMvBQNThzyl58JRdSfxHBS"
       "4++YgBqt8bw0N2a2nR43oYODkZjaTQnzat/z6/m87bSsbK+KpK20o0MIJvsRIfbnX8IAyyPeYtHID9eF bob@example.org")
ECDSA = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNUkdayDt35W5yccWSmrxQ/YhlJxOZPxEVOyh9lUkujYS2YuKvYz2l4b8M3Gp1b46SXAPmV5YqD5oFy7VHPLlOU= carol"

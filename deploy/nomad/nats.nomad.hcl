# The NATS JetStream cluster: one peer per data center (dc1, dc2, dc3), clustered over routes that
# consul-template reads from the Consul catalog of every DC (WAN-federated). Streams are R3 with one
# replica per DC (`unique_tag: "dc:"`). Each peer keeps its store on a host volume `baton-nats`
# (client.host_volume in the Nomad client config), so a restart does not lose it.

variable "image" {
  type        = string
  default     = "registry.example.com/baton:0.1.0"
  description = "The Baton image (deploy/Dockerfile); it carries nats-server."
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1", "dc2", "dc3"]
}

job "baton-nats" {
  datacenters = var.datacenters
  type        = "service"

  update {
    max_parallel     = 1
    min_healthy_time = "30s"
    healthy_deadline = "5m"
    auto_revert      = true
  }

  group "nats-dc1" {
    count = 1

    constraint {
      attribute = "${node.datacenter}"
      value     = "dc1"
    }

    volume "store" {
      type   = "host"
      source = "baton-nats"
    }

    network {
      port "client" { static = 4222 }
      port "cluster" { static = 6222 }
      port "monitor" { static = 8222 }
    }

    service {
      name     = "baton-nats"
      port     = "client"
      provider = "consul"
      tags     = ["dc1"]

      check {
        type     = "http"
        port     = "monitor"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    service {
      name     = "baton-nats-route"
      port     = "cluster"
      provider = "consul"
    }

    task "nats" {
      driver       = "docker"
      kill_timeout = "60s"

      config {
        image        = var.image
        network_mode = "host"
        command      = "nats-server"
        args         = ["-c", "/local/nats.conf"]
      }

      volume_mount {
        volume      = "store"
        destination = "/data"
      }

      template {
        destination   = "local/nats.conf"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-EOT
          server_name: nats-dc1
          server_tags: ["dc:dc1"]
          listen: 0.0.0.0:4222
          http: 0.0.0.0:8222
          jetstream {
            store_dir: /data/jetstream
            sync_interval: always
            unique_tag: "dc:"
            max_memory_store: 256MB
            max_file_store: 20GB
          }
          cluster {
            name: baton
            listen: 0.0.0.0:6222
            routes: [
          %{for dc in var.datacenters~}
          {{ range service "baton-nats-route@${dc}" }}    nats-route://{{ .Address }}:{{ .Port }}
          {{ end }}
          %{endfor~}
            ]
          }
        EOT
      }

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }

  group "nats-dc2" {
    count = 1

    constraint {
      attribute = "${node.datacenter}"
      value     = "dc2"
    }

    volume "store" {
      type   = "host"
      source = "baton-nats"
    }

    network {
      port "client" { static = 4222 }
      port "cluster" { static = 6222 }
      port "monitor" { static = 8222 }
    }

    service {
      name     = "baton-nats"
      port     = "client"
      provider = "consul"
      tags     = ["dc2"]

      check {
        type     = "http"
        port     = "monitor"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    service {
      name     = "baton-nats-route"
      port     = "cluster"
      provider = "consul"
    }

    task "nats" {
      driver       = "docker"
      kill_timeout = "60s"

      config {
        image        = var.image
        network_mode = "host"
        command      = "nats-server"
        args         = ["-c", "/local/nats.conf"]
      }

      volume_mount {
        volume      = "store"
        destination = "/data"
      }

      template {
        destination   = "local/nats.conf"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-EOT
          server_name: nats-dc2
          server_tags: ["dc:dc2"]
          listen: 0.0.0.0:4222
          http: 0.0.0.0:8222
          jetstream {
            store_dir: /data/jetstream
            sync_interval: always
            unique_tag: "dc:"
            max_memory_store: 256MB
            max_file_store: 20GB
          }
          cluster {
            name: baton
            listen: 0.0.0.0:6222
            routes: [
          %{for dc in var.datacenters~}
          {{ range service "baton-nats-route@${dc}" }}    nats-route://{{ .Address }}:{{ .Port }}
          {{ end }}
          %{endfor~}
            ]
          }
        EOT
      }

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }

  group "nats-dc3" {
    count = 1

    constraint {
      attribute = "${node.datacenter}"
      value     = "dc3"
    }

    volume "store" {
      type   = "host"
      source = "baton-nats"
    }

    network {
      port "client" { static = 4222 }
      port "cluster" { static = 6222 }
      port "monitor" { static = 8222 }
    }

    service {
      name     = "baton-nats"
      port     = "client"
      provider = "consul"
      tags     = ["dc3"]

      check {
        type     = "http"
        port     = "monitor"
        path     = "/healthz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    service {
      name     = "baton-nats-route"
      port     = "cluster"
      provider = "consul"
    }

    task "nats" {
      driver       = "docker"
      kill_timeout = "60s"

      config {
        image        = var.image
        network_mode = "host"
        command      = "nats-server"
        args         = ["-c", "/local/nats.conf"]
      }

      volume_mount {
        volume      = "store"
        destination = "/data"
      }

      template {
        destination   = "local/nats.conf"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-EOT
          server_name: nats-dc3
          server_tags: ["dc:dc3"]
          listen: 0.0.0.0:4222
          http: 0.0.0.0:8222
          jetstream {
            store_dir: /data/jetstream
            sync_interval: always
            unique_tag: "dc:"
            max_memory_store: 256MB
            max_file_store: 20GB
          }
          cluster {
            name: baton
            listen: 0.0.0.0:6222
            routes: [
          %{for dc in var.datacenters~}
          {{ range service "baton-nats-route@${dc}" }}    nats-route://{{ .Address }}:{{ .Port }}
          {{ end }}
          %{endfor~}
            ]
          }
        EOT
      }

      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}

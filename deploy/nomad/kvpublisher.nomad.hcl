# Baton kvpublishers: one per data center, pinned there, each writing its own DC's Consul (the local
# agent of the node it runs on). A Consul that is down delays only its own DC.
# Secrets: `nomad var put nomad/jobs/baton-kvpublisher consul_token_dc1=... consul_token_dc2=... consul_token_dc3=...`
# (ACL tokens with write access to the KVClusterMasterPrefix; leave empty when Consul has no ACLs).

variable "image" {
  type    = string
  default = "registry.example.com/baton:0.1.0"
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1", "dc2", "dc3"]
}

job "baton-kvpublisher" {
  datacenters = var.datacenters
  type        = "service"

  update {
    max_parallel     = 1
    min_healthy_time = "10s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  group "kvpublisher-dc1" {
    count = 1

    constraint {
      attribute = "${node.datacenter}"
      value     = "dc1"
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "kvpublisher" {
      driver       = "docker"
      kill_timeout = "15s"

      config {
        image   = var.image
        command = "python"
        args    = ["-m", "services.kvpublisher", "--config", "/local/baton.json", "--dc", "dc1"]
      }

      env {
        BATON_BatonDataCenter = "dc1"
        BATON_BatonNodeName   = "${NOMAD_JOB_NAME}-dc1-${node.unique.name}"
      }

      template {
        destination = "local/nats.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
          BATON_BatonNatsURLs=%{for dc in var.datacenters}{{ range service "baton-nats@${dc}" }}nats://{{ .Address }}:{{ .Port }},{{ end }}%{endfor}
        EOT
      }

      template {
        destination = "secrets/baton.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/baton-kvpublisher" }}
          CONSUL_TOKEN={{ .consul_token_dc1 }}
          {{ end }}
        EOT
      }

      template {
        destination = "local/baton.json"
        change_mode = "restart"
        data        = <<-EOT
          {
            "BatonStreamReplicas": 3,
            "KVClusterMasterPrefix": "mysql/master",
            "BatonKVReconcileSeconds": 30,
            "BatonConsulDataCenters": {
              "dc1": {"Address": "{{ env "attr.unique.network.ip-address" }}:8500", "AclToken": "$${CONSUL_TOKEN}", "Scheme": "http"}
            }
          }
        EOT
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }

  group "kvpublisher-dc2" {
    count = 1

    constraint {
      attribute = "${node.datacenter}"
      value     = "dc2"
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "kvpublisher" {
      driver       = "docker"
      kill_timeout = "15s"

      config {
        image   = var.image
        command = "python"
        args    = ["-m", "services.kvpublisher", "--config", "/local/baton.json", "--dc", "dc2"]
      }

      env {
        BATON_BatonDataCenter = "dc2"
        BATON_BatonNodeName   = "${NOMAD_JOB_NAME}-dc2-${node.unique.name}"
      }

      template {
        destination = "local/nats.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
          BATON_BatonNatsURLs=%{for dc in var.datacenters}{{ range service "baton-nats@${dc}" }}nats://{{ .Address }}:{{ .Port }},{{ end }}%{endfor}
        EOT
      }

      template {
        destination = "secrets/baton.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/baton-kvpublisher" }}
          CONSUL_TOKEN={{ .consul_token_dc2 }}
          {{ end }}
        EOT
      }

      template {
        destination = "local/baton.json"
        change_mode = "restart"
        data        = <<-EOT
          {
            "BatonStreamReplicas": 3,
            "KVClusterMasterPrefix": "mysql/master",
            "BatonKVReconcileSeconds": 30,
            "BatonConsulDataCenters": {
              "dc2": {"Address": "{{ env "attr.unique.network.ip-address" }}:8500", "AclToken": "$${CONSUL_TOKEN}", "Scheme": "http"}
            }
          }
        EOT
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }

  group "kvpublisher-dc3" {
    count = 1

    constraint {
      attribute = "${node.datacenter}"
      value     = "dc3"
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "kvpublisher" {
      driver       = "docker"
      kill_timeout = "15s"

      config {
        image   = var.image
        command = "python"
        args    = ["-m", "services.kvpublisher", "--config", "/local/baton.json", "--dc", "dc3"]
      }

      env {
        BATON_BatonDataCenter = "dc3"
        BATON_BatonNodeName   = "${NOMAD_JOB_NAME}-dc3-${node.unique.name}"
      }

      template {
        destination = "local/nats.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
          BATON_BatonNatsURLs=%{for dc in var.datacenters}{{ range service "baton-nats@${dc}" }}nats://{{ .Address }}:{{ .Port }},{{ end }}%{endfor}
        EOT
      }

      template {
        destination = "secrets/baton.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/baton-kvpublisher" }}
          CONSUL_TOKEN={{ .consul_token_dc3 }}
          {{ end }}
        EOT
      }

      template {
        destination = "local/baton.json"
        change_mode = "restart"
        data        = <<-EOT
          {
            "BatonStreamReplicas": 3,
            "KVClusterMasterPrefix": "mysql/master",
            "BatonKVReconcileSeconds": 30,
            "BatonConsulDataCenters": {
              "dc3": {"Address": "{{ env "attr.unique.network.ip-address" }}:8500", "AclToken": "$${CONSUL_TOKEN}", "Scheme": "http"}
            }
          }
        EOT
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}

# Baton API + web UI (/ui/): 2 instances spread over the data centers, registered in Consul as
# `baton-api` with an HTTP check on /api/health (answers 503 while NATS is unreachable, so a load
# balancer reading the catalog skips that node). Each instance projects the streams into its own
# SQLite read model on the sticky ephemeral disk: a cache that a new allocation rebuilds from JetStream.
# Secrets: `nomad var put nomad/jobs/baton-api api_http_password=... api_admin_token=... api_readonly_token=...`

variable "image" {
  type    = string
  default = "registry.example.com/baton:0.1.0"
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1", "dc2", "dc3"]
}

job "baton-api" {
  datacenters = var.datacenters
  type        = "service"

  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "10s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  group "api" {
    count = 2

    spread {
      attribute = "${node.datacenter}"
    }

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    ephemeral_disk {
      size    = 1024
      sticky  = true
      migrate = true
    }

    network {
      port "http" {
        to = 3000
      }
    }

    service {
      name     = "baton-api"
      port     = "http"
      provider = "consul"
      tags     = ["baton", "http"]

      check {
        name     = "baton-api health"
        type     = "http"
        path     = "/api/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "api" {
      driver       = "docker"
      kill_timeout = "15s"

      config {
        image   = var.image
        command = "python"
        args    = ["-m", "services.api", "--config", "/local/baton.json"]
        ports   = ["http"]
      }

      env {
        BATON_BatonDataCenter = "${node.datacenter}"
        BATON_BatonNodeName   = "${NOMAD_JOB_NAME}-${NOMAD_ALLOC_INDEX}-${node.unique.name}"
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
          {{ with nomadVar "nomad/jobs/baton-api" }}
          API_HTTP_PASSWORD={{ .api_http_password }}
          API_ADMIN_TOKEN={{ .api_admin_token }}
          API_READONLY_TOKEN={{ .api_readonly_token }}
          {{ end }}
        EOT
      }

      template {
        destination = "local/baton.json"
        change_mode = "restart"
        data        = <<-EOT
          {
            "BatonStreamReplicas": 3,
            "InstancePollSeconds": 5,
            "ReasonableInstanceCheckSeconds": 1,
            "ReasonableReplicationLagSeconds": 10,
            "RecoverMasterClusterFilters": ["*"],
            "RecoverIntermediateMasterClusterFilters": ["*"],
            "ListenAddress": "0.0.0.0:3000",
            "AuthenticationMethod": "multi",
            "HTTPAuthUser": "admin",
            "HTTPAuthPassword": "$${API_HTTP_PASSWORD}",
            "PowerAuthUsers": ["admin"],
            "BatonAuthTokens": [
              {"Name": "automation", "Token": "$${API_ADMIN_TOKEN}", "Role": "admin"},
              {"Name": "dashboards", "Token": "$${API_READONLY_TOKEN}", "Role": "read-only"}
            ],
            "BatonReadModelURL": "sqlite+aiosqlite:////alloc/data/readmodel.db"
          }
        EOT
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}

# Baton analyzers: 2, spread over the data centers. Both analyse every cluster; their detections carry
# the same message ids, so JetStream keeps one of each. No secrets: analyzers never talk to MySQL.

variable "image" {
  type    = string
  default = "registry.example.com/baton:0.1.0"
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1", "dc2", "dc3"]
}

job "baton-analyzer" {
  datacenters = var.datacenters
  type        = "service"

  update {
    max_parallel     = 1
    min_healthy_time = "15s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  group "analyzer" {
    count = 2

    spread {
      attribute = "${node.datacenter}"
    }

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "analyzer" {
      driver       = "docker"
      kill_timeout = "30s"

      config {
        image   = var.image
        command = "python"
        args    = ["-m", "services.analyzer", "--config", "/local/baton.json"]
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
            "OnFailureDetectionProcesses": [],
            "BatonHookTimeoutSeconds": 30
          }
        EOT
      }

      resources {
        cpu    = 1000
        memory = 512
      }
    }
  }
}

# Baton recovery: 2 processes in two different data centers. They campaign for the baton_leader lease;
# the holder acts, the other takes over within the lease TTL (3 s) if the leader or its DC is lost.
# Secrets: `nomad var put nomad/jobs/baton-recovery mysql_topology_password=... mysql_replication_password=...`

variable "image" {
  type    = string
  default = "registry.example.com/baton:0.1.0"
}

variable "datacenters" {
  type    = list(string)
  default = ["dc1", "dc2", "dc3"]
}

job "baton-recovery" {
  datacenters = var.datacenters
  type        = "service"

  # Never replace both at once: one of them must hold or be ready to take the lease.
  update {
    max_parallel     = 1
    min_healthy_time = "15s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  group "recovery" {
    count = 2

    # Two allocations, two different data centers.
    constraint {
      operator  = "distinct_property"
      attribute = "${node.datacenter}"
      value     = "1"
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "recovery" {
      driver = "docker"
      # A clean stop lets a running recovery finish, then releases the lease to the standby.
      kill_timeout = "120s"

      config {
        image   = var.image
        command = "python"
        args    = ["-m", "services.recovery", "--config", "/local/baton.json"]
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
          {{ with nomadVar "nomad/jobs/baton-recovery" }}
          MYSQL_TOPOLOGY_PASSWORD={{ .mysql_topology_password }}
          MYSQL_REPLICATION_PASSWORD={{ .mysql_replication_password }}
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
            "MySQLTopologyUser": "baton",
            "MySQLTopologyPassword": "$${MYSQL_TOPOLOGY_PASSWORD}",
            "MySQLReplicationUser": "repl",
            "MySQLReplicationPassword": "$${MYSQL_REPLICATION_PASSWORD}",
            "MySQLConnectTimeoutSeconds": 2,
            "DetectDataCenterQuery": "SELECT SUBSTRING_INDEX(SUBSTRING_INDEX(@@hostname, '.', 2), '.', -1)",
            "RecoverMasterClusterFilters": ["*"],
            "RecoverIntermediateMasterClusterFilters": ["*"],
            "RecoveryPeriodBlockSeconds": 3600,
            "ApplyMySQLPromotionAfterMasterFailover": true,
            "DelayMasterPromotionIfSQLThreadNotUpToDate": true,
            "MasterFailoverLostInstancesDowntimeMinutes": 60,
            "DetachLostReplicasAfterMasterFailover": true,
            "PreventCrossDataCenterMasterFailover": false,
            "KVClusterMasterPrefix": "mysql/master",
            "PreFailoverProcesses": [],
            "PostMasterFailoverProcesses": [],
            "PostUnsuccessfulFailoverProcesses": [],
            "BatonHookTimeoutSeconds": 30
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
